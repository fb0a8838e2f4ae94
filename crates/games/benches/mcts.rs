//! MCTS speed: simulations per second with random rollouts on 6x6 Othello
//! from the start position (one core, a fresh tree per search), for leaf
//! batches of 1 and 16.
//!
//! `cargo bench -p kibitzer-games --bench mcts -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kibitzer_games::mcts::{Mcts, MctsConfig, RolloutEvaluator};
use kibitzer_games::othello::Othello;

fn rollout_mcts(c: &mut Criterion) {
    const SIMULATIONS: u32 = 2_000;
    let start = Othello::new(6).expect("6x6 is supported");
    let mut group = c.benchmark_group("mcts_rollouts_6x6");
    group.sample_size(10);
    group.throughput(Throughput::Elements(u64::from(SIMULATIONS)));
    for batch in [1usize, 16] {
        let config = MctsConfig {
            simulations: SIMULATIONS,
            leaf_batch_size: batch,
            ..MctsConfig::default()
        };
        let mut seed = 0;
        group.bench_function(format!("batch_{batch}"), |b| {
            b.iter(|| {
                seed += 1;
                let mut search =
                    Mcts::new(config, RolloutEvaluator::default(), seed).expect("valid config");
                black_box(
                    search
                        .search(black_box(&start))
                        .expect("search runs")
                        .best_move,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, rollout_mcts);
criterion_main!(benches);
