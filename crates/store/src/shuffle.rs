//! Seeded orders and the grouping of shards into windows.
//!
//! Every order is a function of the seed and the place only ((seed, epoch)
//! for the shard order, (seed, epoch, window) for the rows of a window), so
//! a reader can jump to any position without replaying what came before.
//! The permutation is Fisher–Yates driven by ChaCha8 with Lemire's unbiased
//! bounded integers, written out here rather than taken from `rand`'s
//! `SliceRandom`, so the orders (and so resumed runs) cannot change with a
//! `rand` release.

use crate::format::Manifest;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Keeps the shard order and the row orders on independent streams.
const SHARD_ORDER: u64 = 0x0053_4841_5244; // "SHARD"
const ROW_ORDER: u64 = 0x524f_5753; // "ROWS"

/// The generator for one order.
fn order_rng(seed: u64, epoch: u64, window: u64, purpose: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (i, word) in [seed, epoch, window, purpose].into_iter().enumerate() {
        key[8 * i..8 * i + 8].copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// A uniform integer in `0..n` (`n > 0`), without modulo bias (Lemire 2019).
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let mut product = u128::from(rng.next_u64()) * u128::from(n);
    if (product as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (product as u64) < threshold {
            product = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (product >> 64) as u64
}

/// Shuffles `items` in place (Fisher–Yates).
fn permute<T>(items: &mut [T], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// The order of the shards in `epoch`: a seeded permutation, or store order.
pub(crate) fn shard_order(shards: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..shards).collect();
    if shuffle {
        permute(&mut order, &mut order_rng(seed, epoch, 0, SHARD_ORDER));
    }
    order
}

/// Fills `order` with the seeded order of the `rows` rows of a window.
pub(crate) fn row_order(rows: usize, seed: u64, epoch: u64, window: u64, order: &mut Vec<u32>) {
    order.clear();
    order
        .extend(0..u32::try_from(rows).expect("windows are capped at u32::MAX rows by plan_epoch"));
    permute(order, &mut order_rng(seed, epoch, window, ROW_ORDER));
}

/// One window of an epoch: consecutive shards of the epoch's shard order,
/// loaded together and shuffled together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowPlan {
    /// Indices of the shards (into the manifest's list), in the order they are loaded.
    pub shards: Vec<usize>,
    /// Rows in the window.
    pub rows: u64,
    /// Memory the loaded window takes: its rows as f32, plus a 4-byte
    /// position per row when shuffling.
    pub bytes: u64,
}

/// Memory one loaded row takes.
pub(crate) fn bytes_per_row(d_in: usize, shuffle: bool) -> u64 {
    4 * d_in as u64 + if shuffle { 4 } else { 0 }
}

/// Groups the shards of `epoch`, in their epoch order, into windows of at
/// most `window_budget` bytes each (greedily; the caller has checked that
/// every shard fits alone).
pub(crate) fn plan_epoch(
    manifest: &Manifest,
    seed: u64,
    shuffle: bool,
    window_budget: u64,
    epoch: u64,
) -> Vec<WindowPlan> {
    let row_bytes = bytes_per_row(manifest.d_in, shuffle);
    let mut windows = Vec::new();
    let mut current = WindowPlan {
        shards: Vec::new(),
        rows: 0,
        bytes: 0,
    };
    for shard in shard_order(manifest.shards.len(), seed, epoch, shuffle) {
        let rows = manifest.shards[shard].rows;
        let fits = current.bytes + rows * row_bytes <= window_budget
            && current.rows + rows <= u64::from(u32::MAX);
        if !fits && !current.shards.is_empty() {
            windows.push(std::mem::replace(
                &mut current,
                WindowPlan {
                    shards: Vec::new(),
                    rows: 0,
                    bytes: 0,
                },
            ));
        }
        current.shards.push(shard);
        current.rows += rows;
        current.bytes += rows * row_bytes;
    }
    if !current.shards.is_empty() {
        windows.push(current);
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn orders_depend_only_on_their_seed_and_place() {
        let a = shard_order(50, 7, 3, true);
        assert_eq!(a, shard_order(50, 7, 3, true));
        assert_ne!(
            a,
            shard_order(50, 8, 3, true),
            "another seed, another order"
        );
        assert_ne!(
            a,
            shard_order(50, 7, 4, true),
            "another epoch, another order"
        );
        assert_eq!(shard_order(5, 7, 3, false), vec![0, 1, 2, 3, 4]);
        let (mut r1, mut r2) = (Vec::new(), Vec::new());
        row_order(100, 1, 0, 0, &mut r1);
        row_order(100, 1, 0, 1, &mut r2);
        assert_ne!(r1, r2, "windows are shuffled independently");
    }

    #[test]
    fn bounded_integers_are_uniform() {
        // 60,000 draws in 0..3: each count within 1% of 20,000 (about 5 sigma).
        let mut rng = order_rng(1, 2, 3, 4);
        let mut counts = [0u32; 3];
        for _ in 0..60_000 {
            counts[below(&mut rng, 3) as usize] += 1;
        }
        for c in counts {
            assert!((19_800..=20_200).contains(&c), "counts {counts:?}");
        }
    }

    proptest! {
        #[test]
        fn row_orders_are_permutations(rows in 0usize..500, seed: u64, epoch in 0u64..5, window in 0u64..5) {
            let mut order = Vec::new();
            row_order(rows, seed, epoch, window, &mut order);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..rows as u32).collect::<Vec<_>>());
        }
    }
}
