//! Othello speed: perft leaf nodes per second (bulk counting, one core) and
//! random games generated per second on two cores, for 8x8 and 6x6.
//!
//! `cargo bench -p kibitzer-games --bench othello -- --warm-up-time 1 --measurement-time 3`
//! Targets (release): 8x8 perft >= 300 million leaves/s; >= 1 million random
//! 8x8 games per minute on 2 cores (about 16,700 games/s).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kibitzer_games::dataset::generate_random_games;
use kibitzer_games::othello::{Othello, perft};

fn perft_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("othello_perft");
    group.sample_size(10);
    for (size, depth) in [(8usize, 9u32), (6, 10)] {
        let start = Othello::new(size).expect("supported size");
        let leaves = perft(&start, depth);
        group.throughput(Throughput::Elements(leaves));
        group.bench_function(format!("{size}x{size}_depth_{depth}"), |b| {
            b.iter(|| perft(black_box(&start), black_box(depth)))
        });
    }
    group.finish();
}

fn random_games_bench(c: &mut Criterion) {
    const GAMES: usize = 20_000;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a 2-thread pool builds");
    let mut group = c.benchmark_group("othello_random_games_2_threads");
    group.sample_size(10);
    group.throughput(Throughput::Elements(GAMES as u64));
    for size in [8usize, 6] {
        let mut seed = 0;
        group.bench_function(format!("{size}x{size}"), |b| {
            b.iter(|| {
                seed += 1;
                pool.install(|| generate_random_games(size, GAMES, seed).expect("supported size"))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, perft_bench, random_games_bench);
criterion_main!(benches);
