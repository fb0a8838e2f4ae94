//! Generation speed and the distribution of scene draws, per task and size:
//! `cargo run --release -p kibitzer-quizzes --example stats [count]`.

use kibitzer_quizzes::{QuizGenerator, TaskKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    for size in [8, 10, 16, 32] {
        let g = QuizGenerator::new(size, &TaskKind::ALL, 1)?;
        for task in TaskKind::ALL {
            let t0 = std::time::Instant::now();
            let (mut tries, mut max_tries, mut fallbacks) = (0usize, 0usize, 0usize);
            for i in 0..n {
                let (_, st) = g.quiz_of_with_stats(task, i);
                tries += st.tries[0] + st.tries[1];
                max_tries = max_tries.max(st.tries[0].max(st.tries[1]));
                fallbacks += st.fallback.iter().filter(|&&f| f).count();
            }
            let dt = t0.elapsed().as_secs_f64();
            println!(
                "size {size:2} {:14} {:9.0} quizzes/s  mean tries {:6.2}  max {:5}  fallbacks {fallbacks}",
                task.name(),
                n as f64 / dt,
                tries as f64 / (2 * n) as f64,
                max_tries
            );
        }
        let t0 = std::time::Instant::now();
        let q = g.generate(0..n);
        println!(
            "size {size:2} all tasks: {:.0} quizzes/s ({} quizzes)",
            n as f64 / t0.elapsed().as_secs_f64(),
            q.len()
        );
    }
    Ok(())
}
