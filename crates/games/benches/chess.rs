//! Chess speed: perft leaf nodes per second from the start position
//! (shakmaty's move generator, bulk counted, one core), random games through
//! the `Game` trait (draw rules, hashing and move conversion included), and
//! PGN reading.
//!
//! `cargo bench -p kibitzer-games --bench chess -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kibitzer_games::Game;
use kibitzer_games::chess::pgn::{GameResult, PgnReader, pgn_string};
use kibitzer_games::chess::{Chess, perft, random_game};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn perft_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("chess_perft");
    group.sample_size(10);
    let start = Chess::new();
    for depth in [4u32, 5] {
        let leaves = perft(&start, depth);
        group.throughput(Throughput::Elements(leaves));
        group.bench_function(format!("start_depth_{depth}"), |b| {
            b.iter(|| perft(black_box(&start), black_box(depth)))
        });
    }
    group.finish();
}

fn random_games_bench(c: &mut Criterion) {
    const GAMES: u64 = 200;
    let mut group = c.benchmark_group("chess_random_games");
    group.sample_size(10);
    let plies: usize = (0..GAMES)
        .map(|seed| random_game(&mut ChaCha8Rng::seed_from_u64(seed), 10_000).ply())
        .sum();
    group.throughput(Throughput::Elements(plies as u64));
    group.bench_function(format!("{GAMES}_games_plies"), |b| {
        b.iter(|| {
            let mut total = 0;
            for seed in 0..GAMES {
                total += random_game(&mut ChaCha8Rng::seed_from_u64(seed), 10_000).ply();
            }
            total
        })
    });
    group.finish();
}

fn pgn_read_bench(c: &mut Criterion) {
    const GAMES: u64 = 1000;
    let text: String = (0..GAMES)
        .map(|seed| {
            let game = random_game(&mut ChaCha8Rng::seed_from_u64(seed), 160);
            pgn_string(&[], &game, GameResult::from_outcome(game.outcome()))
        })
        .collect();
    let mut group = c.benchmark_group("chess_pgn_read");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function(format!("{GAMES}_random_games"), |b| {
        b.iter(|| {
            PgnReader::new(black_box(text.as_bytes()), "<bench>")
                .map(|g| g.expect("our PGN reads back").game.ply())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, perft_bench, random_games_bench, pgn_read_bench);
criterion_main!(benches);
